import fc from "fast-check";
import { ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";

/** Strings that hostile or careless callers send: SQL, control characters, oversize, near-valid. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("", "u", "free", "pro", "enterprise", "jobs", "api_calls", "storage_mb", "root", "page-", "%", "_"),
  fc.constantFrom("'; drop table accounts; --", "x') or ('1'='1", "\u0000", "a\u0000b", "\ud800", "🙂", " ", "\n"),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code)), maxLength: 3 }),
  fc.integer({ min: 120, max: 2000 }).map((length) => "x".repeat(length)),
);

const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };

function scalarArbitrary(scalar: ScalarType): fc.Arbitrary<unknown> {
  switch (scalar) {
    case ScalarType.STRING:
      return hostileString;
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(fc.bigInt(INT64), fc.bigInt({ min: -20n, max: 20n }), fc.constantFrom(2n ** 53n - 1n, 2n ** 53n, -(2n ** 63n)));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.oneof(fc.integer(), fc.integer({ min: -5, max: 5000 }));
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.integer({ min: 0, max: 2 ** 32 - 1 });
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.double();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
  }
}

function fieldArbitrary(field: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case "scalar":
      return scalarArbitrary(field.scalar);
    case "enum":
      return fc.integer({ min: -1, max: 6 });
    case "message":
      return depth > 2 ? fc.constant(undefined) : messageArbitrary(field.message, depth + 1);
    case "list":
      return fc.array(
        field.listKind === "message" ? messageArbitrary(field.message, depth + 1) : field.listKind === "enum" ? fc.integer({ min: -1, max: 6 }) : scalarArbitrary(field.scalar),
        { maxLength: 3 },
      );
    case "map":
      return fc.dictionary(hostileString, field.mapKind === "scalar" ? scalarArbitrary(field.scalar) : fc.constant(undefined), { maxKeys: 3 });
  }
}

/** Any message of a type, fields set or not, values hostile: what a fuzzer sends. */
export function messageArbitrary(desc: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of desc.fields) {
    // Oneof members are set through their oneof; none of the fuzzed requests has one.
    if (field.oneof === undefined) fields[field.localName] = fieldArbitrary(field, depth);
  }
  return fc.record(fields, { requiredKeys: [] });
}
