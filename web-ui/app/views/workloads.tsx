// Workloads: Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs, CronJobs and Pods.

export function Workloads(props: { resource: string }) {
  return <section class="page"><h1>{props.resource}</h1></section>;
}
