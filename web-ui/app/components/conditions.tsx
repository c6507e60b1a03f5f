// An object's status.conditions as a table: the one the detail pages and the node page show.

import { Age, Pill } from './badges';

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  lastHeartbeatTime?: string;
}

/** Whether a condition's status is the healthy one: pressure and "unavailable" conditions are good when False. */
function tone(c: Condition): 'ok' | 'warn' | 'bad' {
  if (c.status === 'Unknown') return 'warn';
  const good = /Pressure$|Unavailable$/.test(c.type) ? c.status === 'False' : c.status === 'True';
  return good ? 'ok' : 'bad';
}

export function Conditions(props: { conditions: Condition[] }) {
  const heartbeats = props.conditions.some((c) => c.lastHeartbeatTime);
  return (
    <section class="card" aria-label="Conditions">
      <h2>Conditions</h2>
      <table class="data plain" aria-label="Conditions">
        <thead>
          <tr>
            <th>Type</th>
            <th>Status</th>
            <th>Reason</th>
            <th>Message</th>
            <th>Last transition</th>
            {heartbeats && <th>Last heartbeat</th>}
          </tr>
        </thead>
        <tbody>
          {props.conditions.map((c) => (
            <tr key={c.type}>
              <th scope="row">{c.type}</th>
              <td>
                <Pill text={c.status} tone={tone(c)} />
              </td>
              <td>{c.reason ?? ''}</td>
              <td class="wrap">{c.message ?? ''}</td>
              <td>{c.lastTransitionTime ? <Age since={c.lastTransitionTime} /> : ''}</td>
              {heartbeats && <td>{c.lastHeartbeatTime ? <Age since={c.lastHeartbeatTime} /> : ''}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
