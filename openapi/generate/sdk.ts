import type { Emitter } from './main.js';

export const emitSdk: Emitter = { owns: [], emit: () => [] };
