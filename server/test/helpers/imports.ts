import { readdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/** One module a file names: an `import`/`export … from` (type-only ones too) or an `import('…')` with a literal. */
export interface ImportEdge {
  /** The file that imports, absolute. */
  from: string;
  /** As written. */
  specifier: string;
  /** The imported file, absolute (`.js` read as the `.ts` beside it); undefined for a package or `node:` module. */
  target: string | undefined;
  typeOnly: boolean;
}

/** Every `.ts` file under `dir`, recursively, skipping `node_modules`, `dist` and `results`. */
export function typeScriptFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return ['node_modules', 'dist', 'results'].includes(entry.name) ? [] : typeScriptFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const parsed = new Map<string, ImportEdge[]>();

/** The imports of one file, read from TypeScript's syntax tree (so comments and strings never count). */
export function importsOf(file: string): ImportEdge[] {
  let edges = parsed.get(file);
  if (edges === undefined) {
    edges = parseImports(file);
    parsed.set(file, edges);
  }
  return edges;
}

function parseImports(file: string): ImportEdge[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const edges: ImportEdge[] = [];
  const add = (specifier: string, typeOnly: boolean): void => {
    const target = specifier.startsWith('.') ? resolve(dirname(file), specifier.replace(/\.js$/, '.ts')) : undefined;
    edges.push({ from: file, specifier, target, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node.moduleSpecifier.text, node.importClause?.isTypeOnly === true);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node.moduleSpecifier.text, node.isTypeOnly);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      add(node.arguments[0].text, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

/**
 * The import cycles among `files` (type-only imports included): each strongly connected group of two or more files,
 * or a file importing itself, as paths relative to `root`, sorted.
 */
export function importCycles(files: readonly string[], root: string): string[][] {
  const known = new Set(files);
  const graph = new Map(
    files.map((file) => [file, importsOf(file).flatMap(({ target }) => (target !== undefined && known.has(target) ? [target] : []))]),
  );
  // Tarjan's strongly connected components.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const connect = (file: string): void => {
    index.set(file, counter);
    low.set(file, counter);
    counter++;
    stack.push(file);
    onStack.add(file);
    for (const next of graph.get(file) ?? []) {
      if (!index.has(next)) {
        connect(next);
        low.set(file, Math.min(low.get(file)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(file, Math.min(low.get(file)!, index.get(next)!));
      }
    }
    if (low.get(file) !== index.get(file)) return;
    const group: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      group.push(member);
    } while (member !== file);
    if (group.length > 1 || graph.get(file)!.includes(file)) {
      cycles.push(group.map((path) => relative(root, path).split(sep).join('/')).sort());
    }
  };
  for (const file of files) if (!index.has(file)) connect(file);
  return cycles;
}

/** Whether `path` is `dir` or inside it. */
export function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return !isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`);
}
