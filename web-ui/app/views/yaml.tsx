// Create and edit from YAML: server-side dry run, a diff, then apply; errors at their line.

export function CreateFromYaml() {
  return <section class="page"><h1>Create</h1></section>;
}
