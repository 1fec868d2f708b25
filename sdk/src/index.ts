export { CloudPhone, type ClientOptions, type RequestArgs, type RequestOptions } from './client.js';
export {
  APIConnectionError,
  APIError,
  APITimeoutError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  CloudPhoneError,
  ConflictError,
  InternalServerError,
  NotFoundError,
  PaymentRequiredError,
  PermissionDeniedError,
  RateLimitError,
  UnprocessableEntityError,
} from './core/errors.js';
export { BinaryResponse, type BinaryBody } from './core/binary.js';
export { Page, PagePromise, type PageBody } from './core/pagination.js';
export { ServerSentEventParser, type ServerSentEvent } from './core/sse.js';
export type { Sleep } from './core/retry.js';
export type * from './generated/models.js';
export {
  operations,
  type BodyOf,
  type OperationId,
  type OperationMeta,
  type OperationTypes,
  type PageItemOf,
  type PaginatedOperationId,
  type PaginatedOperations,
  type ParamsOf,
  type QueryOf,
  type QueryParamMeta,
  type ResultOf,
} from './generated/operations.js';
export type * from './generated/resources.js';
export {
  Apps,
  DeviceHandle,
  Devices,
  DeviceStreamError,
  Events,
  Invoices,
  LeaseEndedError,
  LeaseHandle,
  LeaseNotGrantedError,
  Leases,
  InstallJobHandle,
  InstallJobTimeoutError,
  ShellSession,
  Usage,
  type AppSource,
  type FollowEventsOptions,
  type InstallAppOptions,
  type InstallWaitOptions,
  type UploadAppOptions,
  type KeepAliveOptions,
  type LeaseDeviceHandle,
  type LogcatFilter,
  type OpenShellOptions,
  type PushOptions,
  type PushSource,
  type ShellOptions,
  type StopKeepAlive,
  type UseLeaseContext,
  type UseLeaseOptions,
  type UsageReportQuery,
  type WaitOptions,
} from './resources/index.js';
export {
  openWebSocket,
  webSocketUrl,
  type WebSocketOperationId,
  type WebSocketOptions,
  type WebSocketParamsOf,
} from './core/websocket.js';
export { VERSION } from './version.js';
