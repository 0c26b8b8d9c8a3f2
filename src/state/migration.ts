/** One step of the state schema; `$S` stands for the schema. Versions count from 1 across all stores, never reused. */
export interface Migration {
  version: number;
  sql: string;
}
