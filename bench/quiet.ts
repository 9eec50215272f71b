// Imported first by bench/run.ts: the logger reads its level when lib/platform/logger
// loads, before bench/environment sets up the rest of the environment.
process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';
// Lambda runs Node 22; the SDK's notice about a local Node 20 is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
