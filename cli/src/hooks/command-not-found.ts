import type { Hook } from '@oclif/core';
import { describeFailure, UsageError } from '../lib/errors.js';
import { formatJson } from '../lib/output.js';

/** The edit distance between two strings (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The commands (space-separated words) closest to what was typed, when close enough to be a typo. oclif takes every
 * word before the first flag for the command id (`devices lst dev_1`), so each leading run of words is tried:
 * `typed` is the run that matched.
 */
function closestCommands(words: readonly string[], commands: readonly string[]): { typed: string; matches: string[] } | undefined {
  let best: { typed: string; matches: string[]; distance: number } | undefined;
  for (let n = 1; n <= words.length; n++) {
    const typed = words.slice(0, n).join(' ');
    const limit = Math.max(2, Math.floor(typed.length / 3));
    for (const id of commands) {
      const d = distance(typed, id);
      if (d > limit || (best && d > best.distance)) continue;
      if (best && d === best.distance && best.typed === typed) best.matches.push(id);
      else best = { typed, matches: [id], distance: d };
    }
  }
  if (!best) return undefined;
  // Of equally close commands, one that what was typed starts with comes first (`devices lst` → `devices ls`).
  const matches = [...new Set(best.matches)].sort(
    (a, b) => Number(best.typed.startsWith(b)) - Number(best.typed.startsWith(a)) || a.length - b.length,
  );
  return { typed: best.typed, matches };
}

/**
 * An unknown command is a usage error (exit 2) that names it with spaces, as typed, and suggests the closest
 * commands: `"devices lst" is not a cloudphone command. Did you mean "devices ls" or "devices list"?`.
 */
const hook: Hook.CommandNotFound = async function ({ id, argv, config }) {
  const words = id.split(':');
  const visible = config.commands.filter((command) => !command.hidden);
  const ids = visible.flatMap((command) => [command.id, ...command.aliases]).map((name) => name.replaceAll(':', ' '));
  const closest = closestCommands(words, ids);
  const topic = words[0]!;
  let message: string;
  if (closest) {
    const quoted = closest.matches.slice(0, 3).map((match) => `"${match}"`);
    message = `"${closest.typed}" is not a ${config.bin} command. Did you mean ${quoted.join(' or ')}?`;
  } else {
    const help = config.topics.some((t) => t.name === topic) ? `${config.bin} ${topic} --help` : `${config.bin} help`;
    message = `"${words.join(' ')}" is not a ${config.bin} command. Run \`${help}\` for the commands.`;
  }
  const failure = describeFailure(new UsageError(message));
  if (argv?.includes('--json')) process.stdout.write(formatJson({ error: failure.problem }));
  else process.stderr.write(`${failure.message}\n`);
  this.exit(failure.exitCode);
};

export default hook;
