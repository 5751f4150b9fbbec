package unimeter

import "fmt"

// RequestHeader is the 16-byte header of every request: magic u32 @0, version u8 @4,
// packet_type u8 @5, partition u16 @6, payload_len u32 @8, request_id u32 @12. Magic and version
// are implied.
type RequestHeader struct {
	// Type is the packet type.
	Type PacketType
	// Partition is 0..255 or PartitionAll. Only ingest uses it (leadership check).
	Partition uint16
	// PayloadLen is the number of payload bytes after the header, at most MaxPayload.
	PayloadLen uint32
	// RequestID is echoed in the reply; 0 is reserved for server pushes.
	RequestID uint32
}

// check reports the first problem of h; an oversized payload_len comes first, since a reader
// that acts on the header must never try to read or allocate that much.
func (h RequestHeader) check() error {
	if h.PayloadLen > MaxPayload {
		return fmt.Errorf("unimeter: request header: payload_len %d: %w", h.PayloadLen, ErrPayloadTooLarge)
	}
	if h.Partition >= Partitions && h.Partition != PartitionAll {
		return fmt.Errorf("unimeter: request header: partition %d: %w (want 0..255 or 0xFFFF)", h.Partition, ErrInvalid)
	}
	return nil
}

// PutRequestHeader writes h into the first RequestHeaderSize bytes of b, which must be at least
// that long. It refuses a partition that is neither 0..255 nor PartitionAll and a PayloadLen
// above MaxPayload. It is meant for filling in a header reserved before the payload was appended.
func PutRequestHeader(b []byte, h RequestHeader) error {
	if len(b) < RequestHeaderSize {
		return fmt.Errorf("unimeter: request header: %w: buffer of %d bytes", ErrTruncated, len(b))
	}
	if err := h.check(); err != nil {
		return err
	}
	le.PutUint32(b[0:], Magic)
	b[4] = Version
	b[5] = uint8(h.Type)
	le.PutUint16(b[6:], h.Partition)
	le.PutUint32(b[8:], h.PayloadLen)
	le.PutUint32(b[12:], h.RequestID)
	return nil
}

// AppendRequestHeader appends the 16-byte encoding of h to dst (see PutRequestHeader).
func AppendRequestHeader(dst []byte, h RequestHeader) ([]byte, error) {
	if err := h.check(); err != nil {
		return dst, err
	}
	dst, b := grow(dst, RequestHeaderSize)
	_ = PutRequestHeader(b, h)
	return dst, nil
}

// DecodeRequestHeader decodes a request header from exactly RequestHeaderSize bytes. It fails
// with ErrBadMagic, ErrBadVersion, ErrPayloadTooLarge or ErrInvalid (bad partition); with those
// errors it still returns the fields as read, so that a server can echo the request id in its
// ERR reply. It does not check the packet type: unknown types are the server's to refuse.
func DecodeRequestHeader(b []byte) (RequestHeader, error) {
	if err := exactLen("request header", b, RequestHeaderSize); err != nil {
		return RequestHeader{}, err
	}
	h := RequestHeader{
		Type:       PacketType(b[5]),
		Partition:  le.Uint16(b[6:]),
		PayloadLen: le.Uint32(b[8:]),
		RequestID:  le.Uint32(b[12:]),
	}
	if m := le.Uint32(b[0:]); m != Magic {
		return h, fmt.Errorf("unimeter: request header: %w: %#08x", ErrBadMagic, m)
	}
	if b[4] != Version {
		return h, fmt.Errorf("unimeter: request header: %w: %d", ErrBadVersion, b[4])
	}
	return h, h.check()
}

// ResponseHeader is the 12-byte header of every reply: status u8 @0, 3 bytes padding,
// request_id u32 @4, payload_len u32 @8.
type ResponseHeader struct {
	// Status is the reply status. For server pushes (RequestID 0) it carries a packet type
	// instead: PacketAlertPush (0x35).
	Status Status
	// RequestID is the request's id, or 0 for a server push.
	RequestID uint32
	// PayloadLen is the number of payload bytes after the header, at most MaxPayload.
	PayloadLen uint32
}

// IsPush reports whether the frame is a server-initiated push (request id 0).
func (h ResponseHeader) IsPush() bool { return h.RequestID == 0 }

// PutResponseHeader writes h into the first ResponseHeaderSize bytes of b, which must be at
// least that long. It refuses a PayloadLen above MaxPayload.
func PutResponseHeader(b []byte, h ResponseHeader) error {
	if len(b) < ResponseHeaderSize {
		return fmt.Errorf("unimeter: response header: %w: buffer of %d bytes", ErrTruncated, len(b))
	}
	if h.PayloadLen > MaxPayload {
		return fmt.Errorf("unimeter: response header: payload_len %d: %w", h.PayloadLen, ErrPayloadTooLarge)
	}
	b[0] = uint8(h.Status)
	b[1], b[2], b[3] = 0, 0, 0
	le.PutUint32(b[4:], h.RequestID)
	le.PutUint32(b[8:], h.PayloadLen)
	return nil
}

// AppendResponseHeader appends the 12-byte encoding of h to dst (see PutResponseHeader).
func AppendResponseHeader(dst []byte, h ResponseHeader) ([]byte, error) {
	if h.PayloadLen > MaxPayload {
		return dst, fmt.Errorf("unimeter: response header: payload_len %d: %w", h.PayloadLen, ErrPayloadTooLarge)
	}
	dst, b := grow(dst, ResponseHeaderSize)
	_ = PutResponseHeader(b, h)
	return dst, nil
}

// DecodeResponseHeader decodes a response header from exactly ResponseHeaderSize bytes. The
// padding is ignored. A PayloadLen above MaxPayload fails with ErrPayloadTooLarge (the header is
// still returned as read); the stream cannot be trusted after that.
func DecodeResponseHeader(b []byte) (ResponseHeader, error) {
	if err := exactLen("response header", b, ResponseHeaderSize); err != nil {
		return ResponseHeader{}, err
	}
	h := ResponseHeader{
		Status:     Status(b[0]),
		RequestID:  le.Uint32(b[4:]),
		PayloadLen: le.Uint32(b[8:]),
	}
	if h.PayloadLen > MaxPayload {
		return h, fmt.Errorf("unimeter: response header: payload_len %d: %w", h.PayloadLen, ErrPayloadTooLarge)
	}
	return h, nil
}
