/**
 * The device side of the ADB protocol, shared by the virtual device (which serves its simulated phone through it)
 * and the device layer's ADB tunnel (which serves a real device's streams through it): packets, the AUTH keys, the
 * adbd endpoint with its flow-controlled streams, and the `reverse:` service's requests and replies.
 */
export { AdbdEndpoint, MAX_PAYLOAD, type AdbdEndpointOptions, type ServiceResolver, type StreamHandler } from './adbd-endpoint.js';
export { AdbKeyError, AuthType, TOKEN_SIZE, encodeAdbPublicKey, parseAdbPublicKey, verifyAdbSignature } from './auth.js';
export { ByteQueue } from './chunk-buffer.js';
export { Command, HEADER_SIZE, PROTOCOL_VERSION, PacketDecoder, ProtocolError, encodePacket, type Packet } from './protocol.js';
export { fail, lengthPrefixed, parseReverseRequest, type ReverseRequest } from './reverse-request.js';
export { AdbStream, StreamClosedError } from './stream.js';
