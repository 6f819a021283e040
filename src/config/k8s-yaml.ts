import { parseAllDocuments } from 'yaml';
import { NodemeshError } from '../errors';

/**
 * Multi-document YAML (and JSON, which is YAML) into raw Kubernetes objects, the way
 * `kubectl apply -f` reads a file: `---` separates documents, empty documents are
 * skipped, and `List` kinds (`kind: List`, `PodList`, ...) are flattened into their items.
 *
 * Only the text is checked here; what the objects mean is checked in objects.ts.
 */

/** A Kubernetes object as found in a file: a mapping with at least `kind`. */
export interface K8sObject {
  apiVersion?: string;
  kind: string;
  metadata?: Record<string, unknown>;
  [field: string]: unknown;
}

/** One object and where it came from. */
export interface RawObject {
  object: K8sObject;
  file: string;
  /** Document number in the file (0-based), and item number when it came from a List. */
  document: number;
  item?: number;
}

/** A document that is valid YAML but not an object we can use. */
export interface DocumentProblem {
  file: string;
  /** "document 2" or "document 0 item 3". */
  object: string;
  reason: string;
}

export interface ParsedFile {
  objects: RawObject[];
  problems: DocumentProblem[];
}

const MAX_ALIASES = 100;

/**
 * Parses one file's text. A YAML syntax error anywhere in the file throws
 * ERR_NM_CONFIG_SYNTAX (the whole file is unusable: which documents are intact is a
 * guess); documents that parse but are not Kubernetes objects are returned as problems.
 */
export function parseK8sYaml(text: string, file: string): ParsedFile {
  const docs = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [];
  for (const doc of list) {
    const error = doc.errors[0];
    if (error) {
      const where = error.linePos?.[0] ? ` at line ${error.linePos[0].line}, column ${error.linePos[0].col}` : '';
      throw new NodemeshError('ERR_NM_CONFIG_SYNTAX', `${file}: YAML syntax error${where}: ${firstLine(error.message)}`, {
        hint: 'fix the file; until then the objects of its last good version stay in effect',
        details: { file },
      });
    }
  }
  const objects: RawObject[] = [];
  const problems: DocumentProblem[] = [];
  list.forEach((doc, document) => {
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIASES });
    } catch (err) {
      problems.push({ file, object: `document ${document}`, reason: `${file}: document ${document}: ${(err as Error).message}` });
      return;
    }
    if (value === null || value === undefined) return; // empty document, e.g. a trailing '---'
    collect(value, file, document, undefined, undefined, objects, problems);
  });
  return { objects, problems };
}

function collect(
  value: unknown,
  file: string,
  document: number,
  item: number | undefined,
  impliedKind: string | undefined,
  objects: RawObject[],
  problems: DocumentProblem[],
): void {
  const where = item === undefined ? `document ${document}` : `document ${document} item ${item}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push({ file, object: where, reason: `${file}: ${where}: not a Kubernetes object (a mapping with apiVersion, kind and metadata)` });
    return;
  }
  const record = value as Record<string, unknown>;
  let kind = record.kind;
  if (kind === undefined && impliedKind !== undefined) kind = impliedKind;
  if (typeof kind !== 'string' || kind === '') {
    problems.push({ file, object: where, reason: `${file}: ${where}: kind: required (a non-empty string)` });
    return;
  }
  if (kind.endsWith('List') && item === undefined) {
    const items = record.items;
    if (!Array.isArray(items)) {
      problems.push({ file, object: where, reason: `${file}: ${where} (${kind}): items: required (a list)` });
      return;
    }
    // PodList items carry no kind of their own; a plain List's items do.
    const itemKind = kind === 'List' ? undefined : kind.slice(0, -'List'.length);
    items.forEach((entry, i) => collect(entry, file, document, i, itemKind, objects, problems));
    return;
  }
  const object = { ...record, kind } as K8sObject;
  objects.push(item === undefined ? { object, file, document } : { object, file, document, item });
}

function firstLine(message: string): string {
  // prettyErrors already appends "at line L, column C:"; the caller says where itself.
  return message.split('\n')[0]!.trim().replace(/ at line \d+, column \d+:?$/, '');
}
