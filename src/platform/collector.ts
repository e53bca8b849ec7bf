import v8 from "node:v8";

/*
 * Imported first by the CLI, for this one effect: V8's allocation-site pretenuring off for the
 * whole process. Under load V8 can decide, from a few early collections, that some of every
 * call's object literals live long, and allocate them straight in the old generation; dead there,
 * they keep the young objects they point to through every young collection until a full one, so
 * most of each call is copied twice and promoted (docs/performance.md, "Nothing of a finished
 * call survives"). Set here because Node refuses such V8 flags in NODE_OPTIONS, and before the
 * other modules load, because a site decided while they load stays decided.
 */
v8.setFlagsFromString("--no-allocation-site-pretenuring");
