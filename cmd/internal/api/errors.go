package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes. They are stable: scripts may compare them.
const (
	CodeInvalidJSON        = "invalid_json"           // malformed body, unknown field
	CodeInvalidArgument    = "invalid_argument"       // a value that cannot be used
	CodeSubnetOverlap      = "subnet_overlap"         // subnet overlaps another network's
	CodeOutsideSubnet      = "address_outside_subnet" // gateway, aux or --ip not in the subnet
	CodeRangeOutsideSubnet = "range_outside_subnet"   // ip-range not inside its subnet
	CodeAuxCollision       = "aux_collision"          // aux address is the gateway or another aux
	CodeAddressTaken       = "address_taken"          // requested address in use or reserved
	CodePoolExhausted      = "pool_exhausted"         // no free address left
	CodeNotFound           = "not_found"              // unknown network, endpoint, port, namespace, interface, route
	CodeConflict           = "conflict"               // duplicate name, already connected, link exists
	CodeNotSupported       = "not_supported"          // a feature not built yet
	CodeStateCorrupt       = "state_corrupt"          // a state file cannot be read
	CodeInternal           = "internal"               // anything else

	// Client-side codes: the request never reached the daemon.
	CodeDaemonUnavailable = "daemon_unavailable"
	CodePermissionDenied  = "permission_denied"
)

// Error is an API error: a stable code and a one-line message.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Status is the HTTP status it travelled with (0 when client-side).
	Status int `json:"-"`
	// Err is an underlying cause, when there is one (not sent).
	Err error `json:"-"`
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns err's code: that of the *Error it wraps, or CodeInternal.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// HTTPStatus returns the status an error code travels with.
func HTTPStatus(code string) int {
	switch code {
	case CodeInvalidJSON, CodeInvalidArgument, CodeOutsideSubnet, CodeRangeOutsideSubnet:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeSubnetOverlap, CodeAuxCollision, CodeAddressTaken, CodePoolExhausted, CodeConflict:
		return http.StatusConflict
	case CodeNotSupported:
		return http.StatusNotImplemented
	default:
		return http.StatusInternalServerError
	}
}

// ErrorBody is the JSON body of an error answer.
type ErrorBody struct {
	Error *Error `json:"error"`
}
