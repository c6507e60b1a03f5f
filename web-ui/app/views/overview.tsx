// The Overview: nodes, pods by phase, Wasm and Linux counts, recent warnings, top functions.

export function Overview() {
  return <section class="page"><h1>Overview</h1></section>;
}
