// SQL statements are bundled as text (esbuild `loader: { '.sql': 'text' }`, and
// tests/support/lua-transform.js under jest).
declare module '*.sql' {
  const source: string;
  export default source;
}
