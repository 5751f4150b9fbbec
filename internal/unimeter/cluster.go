package unimeter

import "fmt"

// PartitionEntry is one partition's entry in the GET_PARTITION_MAP reply (96 bytes): leader
// 24 B @0, replica0 24 B @24, replica1 24 B @48, 24 bytes padding. Addresses are "host:port",
// at most MaxAddrLen bytes (they may fill the whole field); an empty address means unknown or
// no node.
type PartitionEntry struct {
	// Leader is the address of the partition's leader.
	Leader string
	// Replica0 is the address of the first replica.
	Replica0 string
	// Replica1 is the address of the second replica.
	Replica1 string
}

// PartitionMap is the GET_PARTITION_MAP reply: one entry per partition, indexed by partition.
type PartitionMap [Partitions]PartitionEntry

// Offsets in a partition map entry.
const (
	pmReplica0 = addrWidth
	pmReplica1 = 2 * addrWidth
	pmPad      = 3 * addrWidth
)

// AppendPartitionMap appends the PartitionMapSize-byte encoding of m to dst. It refuses
// addresses longer than MaxAddrLen or containing a NUL; on error dst is returned unchanged.
func AppendPartitionMap(dst []byte, m *PartitionMap) ([]byte, error) {
	for p := range m {
		e := &m[p]
		for _, a := range [...]struct{ what, addr string }{{"leader", e.Leader}, {"replica0", e.Replica0}, {"replica1", e.Replica1}} {
			if err := checkString(a.what+" address", a.addr, MaxAddrLen); err != nil {
				return dst, fmt.Errorf("unimeter: partition map: partition %d: %w", p, err)
			}
		}
	}
	dst, b := grow(dst, PartitionMapSize)
	clear(b)
	for p := range m {
		e := &m[p]
		w := b[p*PartitionEntrySize:]
		putString(w[:addrWidth], e.Leader)
		putString(w[pmReplica0:pmReplica0+addrWidth], e.Replica0)
		putString(w[pmReplica1:pmReplica1+addrWidth], e.Replica1)
	}
	return dst, nil
}

// DecodePartitionMap decodes a GET_PARTITION_MAP reply payload of exactly PartitionMapSize
// bytes, leniently: padding and bytes after an address's NUL are ignored.
func DecodePartitionMap(p []byte) (*PartitionMap, error) {
	if err := exactLen("partition map", p, PartitionMapSize); err != nil {
		return nil, err
	}
	m := new(PartitionMap)
	for i := range m {
		e := &m[i]
		w := p[i*PartitionEntrySize : i*PartitionEntrySize+pmPad]
		var err error
		if e.Leader, err = getString("leader address", w[:addrWidth], MaxAddrLen, false); err != nil {
			return nil, fmt.Errorf("unimeter: partition map: partition %d: %w", i, err)
		}
		if e.Replica0, err = getString("replica0 address", w[pmReplica0:pmReplica0+addrWidth], MaxAddrLen, false); err != nil {
			return nil, fmt.Errorf("unimeter: partition map: partition %d: %w", i, err)
		}
		if e.Replica1, err = getString("replica1 address", w[pmReplica1:pmReplica1+addrWidth], MaxAddrLen, false); err != nil {
			return nil, fmt.Errorf("unimeter: partition map: partition %d: %w", i, err)
		}
	}
	return m, nil
}

// PartitionStatus is one partition's entry in the CLUSTER_STATUS reply (8 bytes): view_number
// u32 @0, commit_number u16 @4, role u8 @6, leader node id u8 @7.
type PartitionStatus struct {
	// View is the view number, truncated to 32 bits by the server.
	View uint32
	// Commit is the commit number, truncated to 16 bits by the server.
	Commit uint16
	// Role is RoleLeader or RoleReplica (not checked).
	Role uint8
	// Leader is the node id of the partition's leader.
	Leader uint8
}

// ClusterStatus is the CLUSTER_STATUS reply (ClusterStatusSize bytes): node_id u8 @0, n_nodes
// u8 @1, 6 bytes padding, wal_offset u64 @8, segment_count u64 @16, memtable_entries u64 @24,
// uptime_ns i64 @32, then one PartitionStatus per partition @40.
type ClusterStatus struct {
	// NodeID is the answering node's id.
	NodeID uint8
	// Nodes is the number of nodes in the cluster.
	Nodes uint8
	// WALOffset is always 0 in the examined server (bug).
	WALOffset uint64
	// Segments is the number of segments.
	Segments uint64
	// MemtableEntries is the number of memtable entries.
	MemtableEntries uint64
	// Uptime is the node's uptime in nanoseconds.
	Uptime int64
	// Partitions holds each partition's status, indexed by partition.
	Partitions [Partitions]PartitionStatus
}

// Offsets in the CLUSTER_STATUS reply and a partition status.
const (
	csNodes    = 1
	csWAL      = 8
	csSegments = 16
	csMemtable = 24
	csUptime   = 32

	psCommit = 4
	psRole   = 6
	psLeader = 7
)

// AppendClusterStatus appends the ClusterStatusSize-byte encoding of s to dst.
func AppendClusterStatus(dst []byte, s *ClusterStatus) []byte {
	dst, b := grow(dst, ClusterStatusSize)
	clear(b[:ClusterStatusHeaderSize])
	b[0] = s.NodeID
	b[csNodes] = s.Nodes
	le.PutUint64(b[csWAL:], s.WALOffset)
	le.PutUint64(b[csSegments:], s.Segments)
	le.PutUint64(b[csMemtable:], s.MemtableEntries)
	le.PutUint64(b[csUptime:], uint64(s.Uptime))
	w := b[ClusterStatusHeaderSize:]
	for i := range s.Partitions {
		ps := &s.Partitions[i]
		le.PutUint32(w[0:], ps.View)
		le.PutUint16(w[psCommit:], ps.Commit)
		w[psRole] = ps.Role
		w[psLeader] = ps.Leader
		w = w[PartitionStatusSize:]
	}
	return dst
}

// DecodeClusterStatus decodes a CLUSTER_STATUS reply payload of exactly ClusterStatusSize bytes;
// the padding is ignored.
func DecodeClusterStatus(p []byte) (*ClusterStatus, error) {
	if err := exactLen("cluster status", p, ClusterStatusSize); err != nil {
		return nil, err
	}
	s := &ClusterStatus{
		NodeID:          p[0],
		Nodes:           p[csNodes],
		WALOffset:       le.Uint64(p[csWAL:]),
		Segments:        le.Uint64(p[csSegments:]),
		MemtableEntries: le.Uint64(p[csMemtable:]),
		Uptime:          int64(le.Uint64(p[csUptime:])),
	}
	w := p[ClusterStatusHeaderSize:]
	for i := range s.Partitions {
		s.Partitions[i] = PartitionStatus{
			View:   le.Uint32(w[0:]),
			Commit: le.Uint16(w[psCommit:]),
			Role:   w[psRole],
			Leader: w[psLeader],
		}
		w = w[PartitionStatusSize:]
	}
	return s, nil
}

// AppendRedirect appends the 24-byte REDIRECT reply payload (the leader's "host:port", NUL-padded)
// to dst. An empty address (leader unknown) is allowed; one longer than MaxAddrLen or containing a
// NUL is refused and dst returned unchanged.
func AppendRedirect(dst []byte, addr string) ([]byte, error) {
	if err := checkString("redirect address", addr, MaxAddrLen); err != nil {
		return dst, fmt.Errorf("unimeter: redirect: %w", err)
	}
	dst, b := grow(dst, RedirectSize)
	clear(b)
	putString(b, addr)
	return dst, nil
}

// DecodeRedirect decodes a REDIRECT reply payload of exactly RedirectSize bytes, leniently
// (bytes after the NUL are ignored). An empty address means the leader is unknown: refresh the
// partition map.
func DecodeRedirect(p []byte) (string, error) {
	if err := exactLen("redirect", p, RedirectSize); err != nil {
		return "", err
	}
	a, err := getString("redirect address", p, MaxAddrLen, false)
	if err != nil {
		return "", fmt.Errorf("unimeter: redirect: %w", err)
	}
	return a, nil
}
