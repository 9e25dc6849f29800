"""DRF serializers of the authentication-device API. No secret is ever serialized."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from django_ciba.core import authorization_types
from django_ciba.models import AuthenticationRequest


class AuthenticationRequestSerializer(serializers.ModelSerializer):
    """What the user sees on the authentication device."""

    client_name = serializers.SerializerMethodField()
    scopes = serializers.SerializerMethodField()
    expires_in = serializers.SerializerMethodField()
    authorization_details = serializers.SerializerMethodField()

    class Meta:
        model = AuthenticationRequest
        fields = [
            "id",
            "client_name",
            "scopes",
            "acr_values",
            "binding_message",
            "authorization_details",
            "status",
            "created_at",
            "expires_at",
            "expires_in",
        ]
        read_only_fields = fields

    def get_client_name(self, obj: AuthenticationRequest) -> str:
        return obj.client.name or obj.client.client_id

    def get_scopes(self, obj: AuthenticationRequest) -> list[str]:
        return obj.scopes

    def get_expires_in(self, obj: AuthenticationRequest) -> int:
        return obj.seconds_left()

    def get_authorization_details(self, obj: AuthenticationRequest) -> list[dict[str, Any]]:
        """Each requested detail (RFC 9396) as sent, and whether the user may leave it out when
        approving (its type's ``SUBSET``). The detail is data: a device shows it escaped."""
        return [
            {"detail": detail, "optional": authorization_types.allows_subset(detail.get("type", ""))}
            for detail in obj.authorization_details or []
        ]


class ApproveSerializer(serializers.Serializer):
    """Optional subset of scopes (space-separated string) and of authorization details (their
    positions in the request, a list of integers). ``acr``, ``amr`` and ``auth_time`` are
    refused: the server derives them from how the session authenticated (django_ciba.assurance)."""

    #: Fields a caller may not send: the assurance of an approval is never the browser's to choose.
    SERVER_DECIDED = ("acr", "amr", "auth_time")

    scope = serializers.CharField(required=False, allow_blank=False, max_length=2000)
    #: Positions of the authorization details approved (RFC 9396); absent: all of them.
    authorization_details = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=10_000), required=False, max_length=1000
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        sent = sorted(name for name in self.SERVER_DECIDED if name in self.initial_data)
        if sent:
            raise serializers.ValidationError(
                f"{', '.join(sent)} cannot be sent: the server derives acr, amr and auth_time "
                "from how this session signed in."
            )
        return attrs

    def decision_kwargs(self) -> dict[str, Any]:
        data = self.validated_data
        kwargs: dict[str, Any] = {}
        if "scope" in data:
            kwargs["scopes"] = data["scope"].split()
        if "authorization_details" in data:
            kwargs["details"] = data["authorization_details"]
        return kwargs
