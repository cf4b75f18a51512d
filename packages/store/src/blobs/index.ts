export { isSha256Hex, type BlobStore, type StagedBlob } from './blob-store.js';
export { FsBlobStore } from './fs-blob-store.js';
