// ConfigMaps and Secrets (secret values hidden until revealed).

export function ConfigList() {
  return <section class="page"><h1>Config</h1></section>;
}
