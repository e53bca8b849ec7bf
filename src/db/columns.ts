import { z } from "zod";

/** A timestamptz column as Slonik returns it (ms since the epoch), read as a Date. */
export const timestampColumn = z.number().transform((ms) => new Date(ms));
