"""The end user's side: decisions taken on the authentication device, the approval pages' settings,
the device API's serializers and the conformance-suite automation."""
