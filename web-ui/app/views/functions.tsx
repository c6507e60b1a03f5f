// Functions: URL, replicas, invocations, latency; deploy; the invoke panel.

export function FunctionsList() {
  return <section class="page"><h1>Functions</h1></section>;
}
