// Nodes: capacity, allocatable and used, runtimes, conditions, taints, pods; cordon and uncordon.

export function NodesList() {
  return <section class="page"><h1>Nodes</h1></section>;
}

export function NodeDetail(props: { name: string }) {
  return <section class="page"><h1>{props.name}</h1></section>;
}
