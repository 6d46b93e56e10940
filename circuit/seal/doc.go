// Package seal is the end-to-end security layer of circuits: a Noise
// handshake between the source node and the destination node, bound to
// their mesh certificates, and the record layer that encrypts and
// authenticates a circuit's payload so that relays carry only ciphertext.
//
// Handshakes use internal/noise, a copy of github.com/flynn/noise v1.1.0
// that allocates less per handshake and gives the same bytes, with X25519,
// AES-256-GCM and SHA-256:
//
//   - IK (Noise_IK_25519_AESGCM_SHA256) when the source holds a verified
//     KeyRecord of the destination: one message each way, and the first
//     message carries the source's identity and early data encrypted to the
//     destination's static key.
//   - XX (Noise_XX_25519_AESGCM_SHA256) otherwise: the destination's
//     identity comes back in the second message and the source's identity
//     goes in a third one, after which the source caches the verified
//     destination record so that later circuits use IK.
//   - Resumed (patternResume, Noise NNpsk0 without ee) when the source holds
//     a session ticket the destination issued in an IK reply: one message
//     each way, keyed by the ticket's pre-shared key, with no DH and no
//     identity to verify; the destination honours a ticket only for the
//     source it authenticated when issuing it, for SessionLifetime and
//     SessionMaxOpens circuits (bounded tables: the source's drops its
//     least recently used ticket; the destination's keeps at most 4 a
//     source and, full, drops from a source holding the most).
//
// A node's static X25519 key is derived from its certificate's Ed25519 key,
// and a KeyRecord {mesh, node, X25519 key, expiry} signed by that Ed25519
// key binds it to the certificate. Identities travel as the certificate
// (DER) plus the signed record inside the encrypted handshake payloads.
//
// The prologue binds what relays must not change in the open header
// (its whole flags field, destination, source, service); relays may
// change the rest (hop limit, hop, trace context, path).
//
// After the handshake, payload travels in records:
//
//	length u16 big endian (ciphertext length: type, data, 16-byte tag)
//	ciphertext = AES-256-GCM(type u8 | data), nonce = record counter
//
// A record carries up to MaxData bytes of data, or up to MaxLargeData to
// an end that stated in the handshake that it reads them: the source with
// a flag of the open header (Initiator.StatesLarge,
// Responder.SourceLarge), the destination in its reply's payload, which
// also says whether it saw that flag. The prologue binds the flags, so a
// relay that clears or sets the flag makes the handshake fail: the
// destination cannot decrypt a one-message (IK or resumed) first message,
// the source cannot decrypt a full (XX) reply (ErrAuth). Keys made
// SmallRecordsOnly state nothing and read only MaxData, as nodes before
// the statements did.
//
// Type 0 (RecordData) is data, type 1 (RecordEnd) the end of stream (a
// half-close), type 2 (RecordRefused) ends the direction too and carries
// the reason the destination refused the circuit after the handshake (its
// policy does not allow the source it authenticated); any other type
// fails with ErrIntegrity. Each direction
// has its own key and counter; both ends rekey (Noise Rekey) every
// RekeyEvery records. A record that fails to decrypt (tampered, replayed,
// reordered, dropped) or a stream that ends without the end record fails
// with an error wrapping ErrIntegrity.
package seal
