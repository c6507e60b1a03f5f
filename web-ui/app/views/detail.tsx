// An object's page: summary, YAML, events, related objects, and the kind's own panels.

export function ObjectDetail(props: { resource: string; namespace: string | null; name: string }) {
  return <section class="page"><h1>{props.resource} {props.namespace} {props.name}</h1></section>;
}
