package repository

import "sync"

// Index knows which chunks are already stored and how, so a backup skips
// uploading them without asking storage about each one. It is filled from
// earlier manifests (and from chunks written during the backup). Safe for
// concurrent use.
type Index struct {
	mu sync.RWMutex
	m  map[string]StoredObject
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{m: map[string]StoredObject{}} }

// AddManifest adds every stored object a manifest references.
func (ix *Index) AddManifest(m *Manifest) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for id, so := range m.Objects {
		ix.m[id] = so
	}
}

// Add records one stored chunk.
func (ix *Index) Add(id ChunkID, so StoredObject) {
	ix.mu.Lock()
	ix.m[id.String()] = so
	ix.mu.Unlock()
}

// Lookup returns the stored object of a chunk, if known.
func (ix *Index) Lookup(id ChunkID) (StoredObject, bool) {
	ix.mu.RLock()
	so, ok := ix.m[id.String()]
	ix.mu.RUnlock()
	return so, ok
}

// Len returns the number of known chunks.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.m)
}
