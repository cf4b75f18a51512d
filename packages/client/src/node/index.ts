export {
  DEFAULT_KILL_GRACE_MS,
  runProcess,
  spawnProcess,
  ProcessStartError,
  handleSink,
  STDERR_TAIL_LINES,
  STDERR_TAIL_BYTES,
  type ProcessSink,
  type OutputStream,
  type RunProcessOptions,
  type ProcessResult,
  type ProcessEndReason,
  type RunningProcess,
} from './run-process.js';
export { startError } from './start-error.js';
export { failureMessage, type FailureMessageOptions } from './process-end.js';
export { LINE_PREFIX, parseLine, LineSplitter, type ParsedLine } from './protocol-line.js';
export { EchoFilter } from './echo-filter.js';
export { groupAlive, signalGroup, processStartTime, stopRecordedGroup, type RecordedGroup, type ProcessIdentity } from './process-group.js';
export { runEnvironment, type RunEnvironment } from './run-env.js';
export { DEFAULT_COLLECT_INTERVAL_MS, FolderCollector, folderState, type CollectOptions, type CollectResult, type FolderState, type StoreFile } from './collect.js';
