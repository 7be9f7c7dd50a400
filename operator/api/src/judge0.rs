//! Judge0 CE 1.13.1's view of an Execution: its statuses and the submission document, pure,
//! so that the shim (which serves it) and the operator (which PUTs it to a `callback_url`)
//! render the same thing.
