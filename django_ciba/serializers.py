"""DRF serializers of the authentication-device API. No secret is ever serialized."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .models import AuthenticationRequest


class AuthenticationRequestSerializer(serializers.ModelSerializer):
    """What the user sees on the authentication device."""

    client_name = serializers.SerializerMethodField()
    scopes = serializers.SerializerMethodField()
    expires_in = serializers.SerializerMethodField()

    class Meta:
        model = AuthenticationRequest
        fields = [
            "id",
            "client_name",
            "scopes",
            "acr_values",
            "binding_message",
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


class ApproveSerializer(serializers.Serializer):
    """Optional subset of scopes (space-separated string or list), acr and amr."""

    scope = serializers.CharField(required=False, allow_blank=False, max_length=2000)
    acr = serializers.CharField(required=False, allow_blank=True, max_length=255)
    amr = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=16)

    def decision_kwargs(self) -> dict[str, Any]:
        data = self.validated_data
        kwargs: dict[str, Any] = {"acr": data.get("acr", ""), "amr": data.get("amr") or []}
        if "scope" in data:
            kwargs["scopes"] = data["scope"].split()
        return kwargs
