// Package storagetest holds what other packages need to test against storage:
//
//   - RunTests, the conformance suite every storage.Backend must pass (in the
//     style of restic's internal/backend/test and kopia's blobtesting): each
//     backend's test file calls it with a constructor;
//   - Memory, an in-memory backend for tests that do not care where bytes live;
//   - Faulty, a wrapper that injects errors and counts operations, for failure
//     path tests (upload errors, missing objects, byte counting).
package storagetest
