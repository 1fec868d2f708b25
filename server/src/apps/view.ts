import type { components } from '../generated/types.js';
import type { ApkMetadata } from './apk.js';
import type { AppViewRow } from './repository.js';

type Schemas = components['schemas'];

export type App = Schemas['App'];
export type AppSummary = Schemas['AppSummary'];
export type AppKind = Schemas['AppKind'];

// Our parser's output is the contract's ApkMetadata (checked here, in both directions).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const metadataMatchesContract: Same<ApkMetadata, Schemas['ApkMetadata']> = true;
void metadataMatchesContract;

export function parseMetadata(row: Pick<AppViewRow, 'metadata'>): ApkMetadata {
  return JSON.parse(row.metadata) as ApkMetadata;
}

/** `test` for an APK with an `<instrumentation>` (something `am instrument` runs), else `app`. */
export function kindOf(metadata: ApkMetadata): AppKind {
  return metadata.instrumentation === null ? 'app' : 'test';
}

export function toApp(row: AppViewRow, metadata: ApkMetadata = parseMetadata(row)): App {
  return {
    id: row.id,
    sha256: row.sha256,
    size: row.size,
    fileName: row.file_name,
    kind: kindOf(metadata),
    metadata,
    iconUrl: row.icon_sha256 === null ? null : `/v1/apps/${row.id}/icon`,
    shared: row.shared === 1,
    uploaderId: row.owner_id,
    uploaderName: row.uploader_name,
    createdAt: row.created_at,
  };
}

export function toAppSummary(row: AppViewRow, metadata: ApkMetadata = parseMetadata(row)): AppSummary {
  return {
    id: row.id,
    sha256: row.sha256,
    packageName: metadata.packageName,
    versionName: metadata.versionName,
    uploaderId: row.owner_id,
  };
}
