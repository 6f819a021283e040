import type { CoreKind } from '../config/core-kind';
import type { OtherObject } from '../config/objects';
import type { ParsedKinds } from '../config/snapshot';
import type { RejectedObject } from '../config/validation';
import { AUTHORIZATION_POLICY_KIND } from './authorization-policy';
import { ENDPOINT_SLICE_KIND } from './endpoint-slice';
import { GRPC_ROUTE_KIND } from './grpc-route';
import { HTTP_ROUTE_KIND } from './http-route';
import { MESH_AUTHORIZATION_POLICY_KIND } from './mesh-authorization-policy';
import { MESH_MEMBER_KIND } from './mesh-member';
import { NAMESPACE_KIND } from './namespace';
import { isOfKind, type ApiResource, type ObjectKind } from './object-kind';
import { PEER_AUTHENTICATION_KIND } from './peer-authentication';
import { POD_KIND } from './pod';
import { SERVICE_KIND } from './service';
import { TRAFFIC_POLICY_KIND } from './traffic-policy';
import { sameItems } from '../util/same-items';

/**
 * Every kind of object nodemesh reads, one entry each (one file each in this folder).
 * The order is the order in which the Kubernetes source lists them and converts their
 * objects.
 */
export const KINDS: readonly ObjectKind[] = [
  NAMESPACE_KIND,
  POD_KIND,
  SERVICE_KIND,
  ENDPOINT_SLICE_KIND,
  HTTP_ROUTE_KIND,
  GRPC_ROUTE_KIND,
  TRAFFIC_POLICY_KIND as ObjectKind,
  PEER_AUTHENTICATION_KIND as ObjectKind,
  AUTHORIZATION_POLICY_KIND as ObjectKind,
  MESH_AUTHORIZATION_POLICY_KIND as ObjectKind,
  MESH_MEMBER_KIND as ObjectKind,
];

/** The converters of the core kinds, for convertObjects and the directory source. */
export function coreKinds(kinds: readonly ObjectKind[] = KINDS): CoreKind[] {
  return kinds.flatMap((k) => (k.core ? [k.core] : []));
}

/** The kind entry served at this resource (group and kind), if any. */
export function kindOfResource(resource: Pick<ApiResource, 'group' | 'kind'>, kinds: readonly ObjectKind[] = KINDS): ObjectKind | undefined {
  return kinds.find((k) => k.resource.group === resource.group && k.resource.kind === resource.kind);
}

/** What the source's parsers made of one update's objects. */
export interface SourceParse {
  /** By kind name: each kind's value, for MeshSnapshot.parsed. */
  parsed: ParsedKinds;
  rejected: RejectedObject[];
}

/** Runs the parser of every kind that has one over its objects among `others`. */
export function parseInSource(others: readonly OtherObject[], kinds: readonly ObjectKind[] = KINDS): SourceParse {
  return new KindParser(kinds).parse(others);
}

/**
 * parseInSource for a source that parses after every change: a kind whose objects are the
 * same as last time (by reference: see ObjectConverter) keeps its last value, so a change
 * re-parses the kinds it touches only, and the value of the others stays the same object.
 */
export class KindParser {
  private readonly last = new Map<string, { inputs: readonly OtherObject[]; value: unknown; rejected: readonly RejectedObject[] }>();

  constructor(private readonly kinds: readonly ObjectKind[] = KINDS) {}

  parse(others: readonly OtherObject[]): SourceParse {
    const parsed: Record<string, unknown> = {};
    const rejected: RejectedObject[] = [];
    for (const kind of this.kinds) {
      if (!kind.parse) continue;
      const result = this.parseKind(kind, others);
      parsed[kind.name] = result.value;
      rejected.push(...result.rejected);
    }
    return { parsed, rejected };
  }

  /** One kind's value and rejections, parsed again only when its objects changed. */
  parseKind<T>(kind: ObjectKind<T>, others: readonly OtherObject[]): { value: T; rejected: readonly RejectedObject[] } {
    if (!kind.parse) throw new Error(`kind ${kind.name} has no parser`);
    const inputs = others.filter((o) => isOfKind(kind as ObjectKind, o));
    const last = this.last.get(kind.name);
    if (last && sameItems(last.inputs, inputs)) return { value: last.value as T, rejected: last.rejected };
    const result = kind.parse(inputs);
    this.last.set(kind.name, { inputs, value: result.value, rejected: result.rejected });
    return result;
  }
}
