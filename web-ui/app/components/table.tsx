// The one table of the dashboard: sortable columns, virtualised rows (only the visible ones are
// in the DOM, so 5,000 pods stay fast), filtered by the top bar's name search.

import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { parseSearch, search, useShared } from '../state';

export interface Column<T> {
  key: string;
  title: string;
  render: (row: T) => ComponentChildren;
  /** The value sorted on (default: none, the column is not sortable). */
  sort?: (row: T) => string | number;
  width?: string;
  align?: 'right';
}

const ROW_HEIGHT = 34;
/** Numeric-aware string order; one Collator is far faster than localeCompare per comparison. */
const collate = new Intl.Collator(undefined, { numeric: true }).compare;
const OVERSCAN = 10;

export function DataTable<T>(props: {
  rows: T[];
  columns: Column<T>[];
  rowKey: (row: T) => string;
  /** Text the search's name part is matched against (default: nothing, no filtering). */
  searchText?: (row: T) => string;
  initialSort?: { key: string; desc?: boolean };
  empty?: ComponentChildren;
  label: string;
  /** Rows shown without scrolling inside the table (default: fill the page). */
  maxHeight?: number;
}) {
  const text = useShared(search);
  const [sort, setSort] = useState(props.initialSort ?? null);
  const { name } = parseSearch(text);
  const rows = useMemo(() => {
    let rows = props.rows;
    if (name && props.searchText) rows = rows.filter((r) => props.searchText!(r).toLowerCase().includes(name));
    const column = sort && props.columns.find((c) => c.key === sort.key);
    if (column?.sort) {
      // Each row's key is computed once, not on every comparison.
      const value = column.sort;
      const keyed = rows.map((row) => [value(row), row] as const);
      keyed.sort(([x], [y]) => {
        const c = typeof x === 'number' && typeof y === 'number' ? x - y : collate(String(x), String(y));
        return sort!.desc ? -c : c;
      });
      rows = keyed.map(([, row]) => row);
    }
    return rows;
  }, [props.rows, name, sort, props.columns]);

  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const measure = () => setHeight(el.clientHeight || 600);
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
  const visible = rows.slice(first, last);

  const toggle = (key: string) =>
    setSort((s) => (s?.key === key ? (s.desc ? null : { key, desc: true }) : { key, desc: false }));

  return (
    <div
      class="table-scroll"
      ref={scroller}
      onScroll={(e) => setScrollTop((e.currentTarget as HTMLDivElement).scrollTop)}
      style={props.maxHeight ? { maxHeight: `${props.maxHeight}px` } : undefined}
    >
      <table class="data" aria-label={props.label} aria-rowcount={rows.length + 1}>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th
                key={c.key}
                style={{ width: c.width, textAlign: c.align }}
                aria-sort={sort?.key === c.key ? (sort.desc ? 'descending' : 'ascending') : undefined}
              >
                {c.sort ? (
                  <button class="sort" onClick={() => toggle(c.key)}>
                    {c.title}
                    <span aria-hidden="true">{sort?.key === c.key ? (sort.desc ? ' ▾' : ' ▴') : ''}</span>
                  </button>
                ) : (
                  c.title
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {first > 0 && <tr style={{ height: `${first * ROW_HEIGHT}px` }} aria-hidden="true" />}
          {visible.map((row, i) => (
            <tr key={props.rowKey(row)} aria-rowindex={first + i + 2} style={{ height: `${ROW_HEIGHT}px` }}>
              {props.columns.map((c) => (
                <td key={c.key} style={{ textAlign: c.align }}>
                  {c.render(row)}
                </td>
              ))}
            </tr>
          ))}
          {last < rows.length && <tr style={{ height: `${(rows.length - last) * ROW_HEIGHT}px` }} aria-hidden="true" />}
        </tbody>
      </table>
      {rows.length === 0 && <div class="empty">{props.empty ?? 'Nothing here.'}</div>}
    </div>
  );
}
