import type { Emitter } from './main.js';

export const emitCli: Emitter = { owns: [], emit: () => [] };
