// Jest transform that mirrors esbuild's `text` loader for .lua files, so tests
// run exactly the script text the Lambda bundle carries.
module.exports = {
  process(source) {
    return { code: `module.exports = { __esModule: true, default: ${JSON.stringify(source)} };` };
  },
};
