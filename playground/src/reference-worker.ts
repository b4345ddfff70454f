// The float64 reference, off the page's thread: the worker compiles the same pattern text (it
// cannot be handed functions), draws the same seeded inputs and runs src/reference/attention.ts,
// rounding inputs to the storage type as a kernel sees them.

import { referenceAttention } from '../../src/reference/attention.js';
import { runInputs, type ReferenceReply, type ReferenceRequest } from './inputs.js';
import { compileText } from './pattern.js';

/** The worker's side of the channel (the page's tsconfig has the DOM library, not the worker one). */
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<ReferenceRequest>) => void) | null;
  postMessage(message: ReferenceReply, transfer?: Transferable[]): void;
};

scope.onmessage = (event) => {
  const { text, params, settings } = event.data;
  let reply: ReferenceReply;
  try {
    const compiled = compileText(text, params);
    if (!compiled.ok) {
      reply = { ok: false, message: compiled.message };
    } else {
      const started = performance.now();
      const { q, k, v } = runInputs(settings);
      const result = referenceAttention(q, k, v, { pattern: compiled.pattern, rope: { theta: settings.ropeTheta, style: 'half' }, dtype: settings.dtype });
      reply = { ok: true, out: result.out.data, lse: result.lse.data, ms: performance.now() - started };
    }
  } catch (error) {
    reply = { ok: false, message: error instanceof Error ? error.message : String(error) };
  }
  if (reply.ok) scope.postMessage(reply, [reply.out.buffer, reply.lse.buffer]);
  else scope.postMessage(reply);
};
