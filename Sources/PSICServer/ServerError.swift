import Foundation
import Hummingbird
import PSICCodec
import PSICEngine
import PSICEntropy
import PSICImage

/// Every way a request can fail, each with its HTTP status and a stable machine-readable code.
/// Handlers throw these; `RequestMiddleware` turns them (and anything else thrown) into
/// `{"error": code, "message": text}` with the status, so a client never sees a bare error page.
public enum ServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 400: the body is not a PNG image libpng can read.
    case invalidPNG(String)
    /// 400: the body is not a PSIC stream, or it is damaged or truncated.
    case invalidStream(String)
    /// 400: a query parameter is missing its value, malformed or out of range.
    case invalidQuery(String)
    /// 400: the request has no body.
    case emptyBody
    /// 400: the body ended before it was complete (the client went away or broke the upload).
    case incompleteBody(String)
    /// 413: the body is larger than `--max-body-bytes`.
    case bodyTooLarge(limit: Int)
    /// 413: the image (or the image a stream decodes to) has more than `--max-pixels` pixels.
    case tooManyPixels(width: Int, height: Int, limit: Int)
    /// 413: the image is wider or taller than the codec takes (its side limit).
    case imageTooLarge(String)
    /// 422: the stream was encoded with another model than the one this server runs.
    case modelMismatch(String)
    /// 408: the body did not arrive within `--timeout`.
    case uploadTimeout(seconds: Double)
    /// 404: no such endpoint.
    case notFound(String)
    /// 503: the queue holds `--max-queue` requests already; retry after `retryAfter` seconds.
    case queueFull(retryAfter: Int)
    /// 503: the server is shutting down and takes no new work.
    case shuttingDown
    /// 503: the machine has not the memory this image needs now (other requests may hold it).
    case insufficientMemory(String)
    /// 504: the request did not finish within `--timeout`.
    case timeout(seconds: Double)
    /// 500: the engine failed (a bug or a lost device), not the request's fault.
    case internalError(String)

    public var status: HTTPResponse.Status {
        switch self {
        case .invalidPNG, .invalidStream, .invalidQuery, .emptyBody, .incompleteBody: return .badRequest
        case .bodyTooLarge, .tooManyPixels, .imageTooLarge: return .contentTooLarge
        case .modelMismatch: return .unprocessableContent
        case .notFound: return .notFound
        case .uploadTimeout: return .requestTimeout
        case .queueFull, .shuttingDown, .insufficientMemory: return .serviceUnavailable
        case .timeout: return .gatewayTimeout
        case .internalError: return .internalServerError
        }
    }

    /// The `error` field of the JSON body.
    public var code: String {
        switch self {
        case .invalidPNG: return "invalid_png"
        case .invalidStream: return "invalid_stream"
        case .invalidQuery: return "invalid_query"
        case .emptyBody: return "empty_body"
        case .incompleteBody: return "incomplete_body"
        case .bodyTooLarge: return "body_too_large"
        case .tooManyPixels: return "too_many_pixels"
        case .imageTooLarge: return "image_too_large"
        case .modelMismatch: return "model_mismatch"
        case .notFound: return "not_found"
        case .uploadTimeout: return "upload_timeout"
        case .queueFull: return "queue_full"
        case .shuttingDown: return "shutting_down"
        case .insufficientMemory: return "insufficient_memory"
        case .timeout: return "timeout"
        case .internalError: return "internal"
        }
    }

    public var description: String {
        switch self {
        case let .invalidPNG(m): return "the body is not a readable PNG image: \(m)"
        case let .invalidStream(m): return "the body is not a valid PSIC stream: \(m)"
        case let .invalidQuery(m): return m
        case .emptyBody: return "the request has no body"
        case let .incompleteBody(m): return "the body ended before it was complete: \(m)"
        case let .bodyTooLarge(limit): return "the body is larger than the limit of \(limit) bytes"
        case let .tooManyPixels(w, h, limit): return "image is \(w)x\(h), more than the limit of \(limit) pixels"
        case let .imageTooLarge(m): return m
        case let .modelMismatch(m): return m
        case let .notFound(m): return m
        case let .uploadTimeout(s): return "the body did not arrive within \(s) s"
        case let .queueFull(s): return "the server's queue is full; retry in \(s) s"
        case .shuttingDown: return "the server is shutting down"
        case let .insufficientMemory(m): return m
        case let .timeout(s): return "the request did not finish within \(s) s"
        case let .internalError(m): return "internal error: \(m)"
        }
    }

    /// Maps the codec's errors to what the client did wrong (or 500 when it was not the client).
    static func from(codecError error: Error, decoding: Bool) -> ServerError {
        switch error {
        case let e as ServerError: return e
        case let e as StreamError:
            if case .modelMismatch = e {
                return .modelMismatch("the stream was encoded with another model (\(e)); this server runs another")
            }
            return .invalidStream(e.description)
        case let e as ImageError:
            if case let .tooLarge(w, h, limit) = e { return .tooManyPixels(width: w, height: h, limit: limit) }
            return .invalidPNG(e.description)
        case let e as CodecError:
            switch e {
            case .invalidLevels, .invalidSampleCount, .budgetTooSmall, .invalidQualityTarget, .unsupportedFormatVersion,
                 .invalidRateDistortionLambda, .invalidDetailSpread, .detailSpreadWithMeanDetails:
                return .invalidQuery(e.description)
            case .noLevelsInStream: return .invalidStream(e.description)
            case .imageTooLarge: return decoding ? .invalidStream(e.description) : .imageTooLarge(e.description)
            case .insufficientMemory: return .insufficientMemory(e.description)
            }
        case let e as EngineError:
            if e.isOutOfMemory { return .insufficientMemory(e.description) }
            return .internalError(e.description)
        default:
            return .internalError("\(error)")
        }
    }
}
