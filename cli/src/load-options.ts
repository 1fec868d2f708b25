import type { Interfaces } from '@oclif/core';
import { topics } from './generated/topics.js';

/**
 * oclif's load options for the CLI at `root`: its package.json with the topics of the generated commands
 * added (their descriptions come from the contract), handwritten topics winning.
 */
export function loadOptions(root: string, pjson: Interfaces.PJSON): Interfaces.LoadOptions {
  return { root, pjson: { ...pjson, oclif: { ...pjson.oclif, topics: { ...topics, ...pjson.oclif.topics } } } };
}
