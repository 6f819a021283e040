/**
 * A JSON Schema checker for the subset deploy/bench/report.schema.json uses: type (one or
 * a list), const, enum, properties, required, additionalProperties: false, items,
 * minItems, minLength, minimum, exclusiveMinimum, and $ref to "#/$defs/NAME". Anything
 * else in a schema is an error, so that the schema cannot say more than is checked.
 * Returns every problem found, each with its JSON pointer; [] means valid.
 */

type Schema = Record<string, unknown>;

const KNOWN = new Set([
  '$schema', '$id', 'title', 'description', '$defs',
  'type', 'const', 'enum', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'minLength', 'minimum', 'exclusiveMinimum', '$ref',
]);

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function typeMatches(want: string, v: unknown): boolean {
  const t = typeOf(v);
  if (want === 'number') return t === 'number' || t === 'integer';
  return want === t;
}

export function validateJson(root: Schema, value: unknown): string[] {
  const problems: string[] = [];
  const defs = (root.$defs ?? {}) as Record<string, Schema>;

  const visit = (schema: Schema, v: unknown, at: string): void => {
    for (const key of Object.keys(schema)) {
      if (!KNOWN.has(key)) throw new Error(`json-schema: keyword '${key}' at ${at || '/'} is not supported`);
    }
    if (typeof schema.$ref === 'string') {
      const m = /^#\/\$defs\/(.+)$/.exec(schema.$ref);
      const target = m ? defs[m[1]!] : undefined;
      if (!target) throw new Error(`json-schema: unresolvable $ref ${schema.$ref}`);
      visit(target, v, at);
    }
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
      if (!types.some((t) => typeMatches(t, v))) {
        problems.push(`${at || '/'}: ${typeOf(v)} is not ${types.join(' or ')}`);
        return;
      }
    }
    if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(v)) problems.push(`${at || '/'}: ${JSON.stringify(v)} is not ${JSON.stringify(schema.const)}`);
    if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
      problems.push(`${at || '/'}: ${JSON.stringify(v)} is not one of ${JSON.stringify(schema.enum)}`);
    }
    if (typeof v === 'number') {
      if (typeof schema.minimum === 'number' && v < schema.minimum) problems.push(`${at}: ${v} < minimum ${schema.minimum}`);
      if (typeof schema.exclusiveMinimum === 'number' && v <= schema.exclusiveMinimum) problems.push(`${at}: ${v} <= exclusiveMinimum ${schema.exclusiveMinimum}`);
      if (!Number.isFinite(v)) problems.push(`${at}: ${v} is not finite`);
    }
    if (typeof v === 'string' && typeof schema.minLength === 'number' && v.length < schema.minLength) problems.push(`${at}: shorter than ${schema.minLength}`);
    if (Array.isArray(v)) {
      if (typeof schema.minItems === 'number' && v.length < schema.minItems) problems.push(`${at}: ${v.length} items < minItems ${schema.minItems}`);
      if (schema.items) v.forEach((item, i) => visit(schema.items as Schema, item, `${at}/${i}`));
    }
    if (typeOf(v) === 'object') {
      const obj = v as Record<string, unknown>;
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      for (const r of (schema.required ?? []) as string[]) if (!(r in obj)) problems.push(`${at || '/'}: missing required '${r}'`);
      for (const [k, child] of Object.entries(obj)) {
        if (props[k]) visit(props[k]!, child, `${at}/${k}`);
        else if (schema.additionalProperties === false && schema.properties) problems.push(`${at || '/'}: unexpected property '${k}'`);
      }
    }
  };
  visit(root, value, '');
  return problems;
}
