"""The API's routes, one router per area: each parses, calls a use case (jitaccess.service), renders."""
