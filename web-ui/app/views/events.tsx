// The Events timeline.

export function EventsTimeline() {
  return <section class="page"><h1>Events</h1></section>;
}
