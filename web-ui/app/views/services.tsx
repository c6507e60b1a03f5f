// Services with their endpoints.

export function ServicesList() {
  return <section class="page"><h1>Services</h1></section>;
}
