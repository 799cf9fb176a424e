"""Recorded Gemini API exchanges, in the shapes the API reference documents
(ai.google.dev/api/generate-content): whole `GenerateContentResponse`s, SSE streams
from `streamGenerateContent?alt=sse` (`data: ...` events, CRLF CRLF framed, no
terminator event), and `{"error": {...}}` bodies with `google.rpc` details."""

from __future__ import annotations

import json
from typing import Any

TEXT_ANSWER: dict[str, Any] = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {"text": "Thinking about capitals of Europe.", "thought": True},
                    {"text": "The capital of France is Paris."},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 12,
        "candidatesTokenCount": 8,
        "totalTokenCount": 120,
        "cachedContentTokenCount": 4,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
        "thoughtsTokenCount": 100,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mJ8uaLLxN6W1nvgPmu2g0Qk",
}

FUNCTION_CALLS: dict[str, Any] = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_time", "args": {"tz": "CET"}}},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 10, "totalTokenCount": 50},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp42",
}

BLOCKED_PROMPT: dict[str, Any] = {
    "promptFeedback": {
        "blockReason": "SAFETY",
        "safetyRatings": [
            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"},
        ],
    },
    "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "blocked1",
}

EMPTY_CANDIDATES: dict[str, Any] = {
    "candidates": [],
    "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    "modelVersion": "gemini-2.5-flash",
}

SAFETY_NO_CONTENT: dict[str, Any] = {
    "candidates": [
        {
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}
            ],
        }
    ],
    "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    "modelVersion": "gemini-2.5-flash",
}


def candidate_with(reason: str, text: str | None = None) -> dict[str, Any]:
    """A whole answer with finish reason `reason` (and `text`, if any)."""
    candidate: dict[str, Any] = {"finishReason": reason, "index": 0}
    if text is not None:
        candidate["content"] = {"parts": [{"text": text}], "role": "model"}
    usage = {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}


def sse(*events: dict[str, Any]) -> bytes:
    return "".join(f"data: {json.dumps(e)}\r\n\r\n" for e in events).encode()


def _piece(text: str, finish: str | None = None, usage: dict[str, Any] | None = None) -> Any:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    candidate["index"] = 0
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage or {"promptTokenCount": 12, "totalTokenCount": 12},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "stream1",
    }


FINAL_USAGE = {
    "promptTokenCount": 12,
    "candidatesTokenCount": 7,
    "thoughtsTokenCount": 30,
    "totalTokenCount": 49,
}

TEXT_STREAM = sse(
    _piece("The capital "),
    _piece("of France "),
    _piece("is Paris.", "STOP", FINAL_USAGE),
)

TOOL_STREAM = sse(
    {
        "candidates": [
            {
                "content": {
                    "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
                    "role": "model",
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 6, "totalTokenCount": 36},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "stream2",
    }
)

SAFETY_MID_STREAM = sse(
    _piece("Here is how "),
    _piece("you would "),
    {
        "candidates": [
            {
                "finishReason": "SAFETY",
                "index": 0,
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
                ],
            }
        ],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 9, "totalTokenCount": 21},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "stream1",
    },
)

CUT_STREAM = sse(_piece("The capital "), _piece("of France "))

RATE_LIMITED: dict[str, Any] = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
        ],
    }
}

BAD_KEY: dict[str, Any] = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ],
    }
}

INVALID_ARGUMENT: dict[str, Any] = {
    "error": {
        "code": 400,
        "message": "* GenerateContentRequest.contents: contents is not specified\n",
        "status": "INVALID_ARGUMENT",
    }
}

OVERLOADED: dict[str, Any] = {
    "error": {
        "code": 503,
        "message": "The model is overloaded. Please try again later.",
        "status": "UNAVAILABLE",
    }
}

INTERNAL: dict[str, Any] = {
    "error": {
        "code": 500,
        "message": "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
        "status": "INTERNAL",
    }
}
