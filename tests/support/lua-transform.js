// Jest transform that mirrors esbuild's `text` loader for .lua and .sql files,
// so tests run exactly the script and statement text the Lambda bundle carries.
module.exports = {
  process(source) {
    return { code: `module.exports = { __esModule: true, default: ${JSON.stringify(source)} };` };
  },
};
