// Types of bin/dist.mjs, for the tests that import it.
export declare const ROOT: string;
export declare const DIST: string;
export declare const STAMP: string;
export declare const SOURCE_ROOTS: readonly string[];
export declare function distIsFresh(root?: string): boolean;
export declare function compiledUrl(module: string): string;
