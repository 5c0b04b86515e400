/// Every state an event goes through in a listener, and every transition, in one place.
///
/// ```text
///                 claim round sent (at the end of the loop turn, or once a round is
///                 full; while a live round is out, when its answers are in)
///   received ───────────────────────▶ claiming
///      ▲                                 │
///      │ no answer (connection lost,     ├─ the key was free, or on a retry it holds
///      │ timeout): retried, flagged      │  this round's own claim value ──▶ processing (ours)
///      │ "attempted"; an error reply     ├─ a done marker, or another claim value of ours
///      │ (OOM, CLUSTERDOWN…: the SET did │  (a copy of the id we already hold), or in a
///      │ not run): retried, not flagged  │  retried round a later copy of an id won in it
///      │                                 │  or already in hand ──▶ duplicate
///      └─────────────────────────────────┴─ another owner's claim ──────────▶ watched
///
///   received ──another member claims (the live one taking part longest, in our view),
///             and the event is new, or newer than where a rewind claims through──▶
///             deferred (only its seq is kept, in a range of seqs held for the claimer;
///             when its line has the producer's layout, only the line's head is read)
///   deferred ──the claimer's state shows it finished, received in an epoch in which it
///             claimed──▶ duplicate
///   deferred ──the claimer left, reads another stream, did not claim then, never
///             received it, or has not finished it within a claim's lifetime──▶
///             rewound: every seq from the lowest such range on that is not in our hands
///             is asked for again (the producer link resumes from before it; the saved
///             watermark never passed a held seq), and new ones are claimed up to where
///             the claimer vouches again
///   rewound ──received again──▶ claiming (a claim value of its own, whatever our view
///             says); a rewound seq the producer skips (a gap, a line without a readable
///             seq) is passed, as on first receipt
///
///   watched ──the owner's progress under exactly that claim value covers it──▶ duplicate
///   watched ──its claim could have expired, or the owner released it──▶ claiming (recovery:
///             a claim value of its own)
///
///   processing ──PROCESS_DELAY_MS elapsed──▶ storing (a whole batch waits while two
///             inserts are in flight; the batches waiting then share one statement, and
///             if it fails each is stored alone as below)
///   storing ──inserted (or the row was already there)──▶ marking
///   storing ──transient failure (connection, classes 08 40 53 57 58…)──▶ storing (retried
///             with backoff; claims kept alive)
///   storing ──a trigger or function refused the part (classes 09 27 2F 38 39 P0), or
///             statement_timeout cancelled it (57014), three times running──▶ storing
///             the two halves, until the refused row stands alone; that row waits behind
///             the rest of its batch and is retried with backoff, never dead-lettered (it
///             may pass once the code or the timeout changes)
///   storing ──PostgreSQL refused the part for good (classes 22, 23, 54)──▶ storing the two
///             halves, until the refused row stands alone ──▶ deadLettering
///   deadLettering ──row in dead_letters──▶ marking (a batch: storing its other rows first)
///   marking ──done marker set (retried until it is)──▶ finished
///   claiming / processing / storing / deadLettering ──shutdown deadline──▶ released
///             (compare-and-delete of the claim: others take it over at once)
/// ```
///
/// `duplicate`, `stored` (through marking) and `deadLettered` are *finished*: the watermark
/// may pass them. `released` is not: the watermark stays below it, so the next listener to
/// resume from it receives the event again.
enum EventStage: Equatable, CustomStringConvertible {
    case received
    case claiming
    case deferred
    case rewound
    case watched
    case processing
    case storing
    case deadLettering
    case marking
    case finished(Finish)
    case released

    /// How an event was finished.
    enum Finish: Equatable {
        /// Stored by us (or found stored, after a takeover).
        case stored
        /// PostgreSQL refused it for good; it is in `dead_letters`.
        case deadLettered
        /// Done, or finished by its owner.
        case duplicate
    }

    /// What happens to an event.
    enum Input: Equatable {
        case claimSent
        /// Another member claims: held for it.
        case heldForClaimer
        /// The claimer shows it finished.
        case claimerFinished
        /// The claimer cannot vouch for it (see the diagram).
        case claimerCannotVouch
        /// The producer sent it again after a rewind.
        case receivedAgain
        case claimAnswered(ClaimVerdict)
        /// The claim's reply never came: the SET may or may not have run.
        case claimUnanswered
        /// The owner finished the claim that holds it (its progress under that value).
        case ownerFinished
        /// The owner's claim could have expired, or the owner gave it back.
        case ownerMayBeGone
        case processed
        case inserted
        case insertFailedTransiently
        /// A refused part was split; this event is in one of the halves.
        case insertRefusedInPart
        /// This event alone was refused for good.
        case insertRefusedAlone
        case deadLettered
        /// A batch's refused row is dead-lettered and other rows of it are still to store.
        case otherRowsPending
        case markedDone
        case shutdownDeadline
    }

    /// The stage after `input`; an impossible transition is a bug and stops the process.
    func next(_ input: Input) -> EventStage {
        switch (self, input) {
        case (.received, .claimSent), (.watched, .ownerMayBeGone), (.rewound, .receivedAgain):
            return .claiming
        case (.deferred, .claimerCannotVouch):
            return .rewound
        case (.received, .heldForClaimer):
            return .deferred
        case (.deferred, .claimerFinished):
            return .finished(.duplicate)
        case (.claiming, .claimAnswered(.ours)):
            return .processing
        case (.claiming, .claimAnswered(.duplicate)), (.watched, .ownerFinished):
            return .finished(.duplicate)
        case (.claiming, .claimAnswered(.watch)):
            return .watched
        case (.claiming, .claimUnanswered):
            return .received
        case (.processing, .processed), (.storing, .insertFailedTransiently), (.storing, .insertRefusedInPart),
             (.deadLettering, .otherRowsPending):
            return .storing
        case (.storing, .inserted), (.deadLettering, .deadLettered):
            return .marking
        case (.storing, .insertRefusedAlone):
            return .deadLettering
        case (.marking, .markedDone):
            return .finished(.stored)
        case (.claiming, .shutdownDeadline), (.processing, .shutdownDeadline), (.storing, .shutdownDeadline),
             (.deadLettering, .shutdownDeadline):
            return .released
        default:
            preconditionFailure("impossible event transition: \(self) on \(input)")
        }
    }

    /// Whether the watermark may pass an event in this stage.
    var isFinished: Bool {
        if case .finished = self { return true }
        return self == .marking
    }

    var description: String {
        switch self {
        case .received: return "received"
        case .claiming: return "claiming"
        case .deferred: return "deferred"
        case .rewound: return "rewound"
        case .watched: return "watched"
        case .processing: return "processing"
        case .storing: return "storing"
        case .deadLettering: return "dead-lettering"
        case .marking: return "marking"
        case .finished(let how): return "finished(\(how))"
        case .released: return "released"
        }
    }
}

/// What a claim's answer means for the event, decided by the value the key holds.
enum ClaimVerdict: Equatable {
    /// Ours: process and store it.
    case ours
    /// Finished or already in our hands under another copy: nothing to do.
    case duplicate
    /// Another owner holds it: keep it until that owner finishes or lets go.
    case watch
}

extension ClaimValues {
    /// The verdict on one claim answer.
    ///
    /// A reply can be lost after the SET ran (the connection dies, Redis restarts from its
    /// append-only file): the retry then finds this very round's claim value, and the
    /// event is ours. The same value on a first attempt means another copy of the id
    /// (published again) is already in our hands under it; any other value of ours means
    /// the same. Neither is proof of storage by itself, but the copy in hand is stored or
    /// released, and the watermark never passes it until then.
    func verdict(claimed: Bool, holder: UnsafeRawBufferPointer, roundClaim: [UInt8], attempted: Bool) -> ClaimVerdict {
        if claimed { return .ours }
        if Self.isDone(holder) { return .duplicate }
        if roundClaim.elementsEqual(holder) { return attempted ? .ours : .duplicate }
        if isOurs(holder) { return .duplicate }
        return .watch
    }
}
