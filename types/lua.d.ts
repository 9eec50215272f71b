// Lua scripts are bundled as text (esbuild `loader: { '.lua': 'text' }`, and
// tests/support/lua-transform.js under jest).
declare module '*.lua' {
  const source: string;
  export default source;
}
