"""Message handling: one module per intent, pure functions from a Message (and its context) to a Reply.
`router.respond()` is the one entry point every channel calls. No flask, twilio or telegram here."""
