// Builds the browser playground (playground/index.html) into playground/dist/: a static folder any
// host can serve (relative asset paths). The compiler core is bundled as it is; kernel templates
// come from templates/ through import.meta.glob, and the float64 reference runs in a module worker.
// `npm run playground` builds it and serves it with `vite preview` on 127.0.0.1.

import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: './',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('dist', import.meta.url)),
    emptyOutDir: true,
    // TypeScript (the DSL reader and the pattern transpiler) is most of the bundle; it is one file.
    chunkSizeWarningLimit: 12_000,
    reportCompressedSize: false,
    rolldownOptions: {
      checks: { pluginTimings: false },
      onLog(level, log, handler) {
        // TypeScript asks for perf_hooks only when it runs under Node; in the page it never does.
        if (log.plugin === 'rolldown:vite-resolve' && log.message.includes('"perf_hooks"')) return;
        handler(level, log);
      },
    },
  },
  worker: { format: 'es' },
  // The page's pattern sources and kernel templates sit above the playground folder.
  server: { host: '127.0.0.1', fs: { allow: [fileURLToPath(new URL('..', import.meta.url))] } },
  preview: { host: '127.0.0.1' },
});
