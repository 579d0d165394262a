// C helpers for the cgo binding; see helpers.h.
#include <stdint.h>
#include <stdlib.h>
#include "graceserve.h"
#include "helpers.h"

#include "_cgo_export.h"

static void gs_handler_tramp(void *ud, server_request *req) { gsHandle((uintptr_t)ud, req); }
static void gs_drop_tramp(void *ud) { gsDrop((uintptr_t)ud); }

static void gs_event_tramp(void *ud, server_event_kind kind, const char *message) { gsEvent((uintptr_t)ud, (int)kind, (char *)message); }

void gs_set_userdata(server_options *o, uintptr_t ud) {
	o->userdata = (void *)ud;
	o->userdata_drop = gs_drop_tramp;
}

void gs_set_handler(server_options *o, uintptr_t ud) {
	gs_set_userdata(o, ud);
	o->handler = gs_handler_tramp;
}

void gs_set_events(server_options *o) { o->on_event = gs_event_tramp; }



// Reads a whole request in one call, as integers (so the Go side passes a pointer-free buffer
// and cgo has nothing to check): out[0..7] = method, path, query, remote address, body, body
// length, header count, HTTP version; then 4 words per header (name, name length, value, value
// length) for up to cap_headers headers. Returns the total header count.
size_t gs_read_request(const server_request *r, uintptr_t *out, size_t cap_headers) {
	const uint8_t *body = NULL;
	size_t body_len = 0;
	server_request_body(r, &body, &body_len);
	size_t n = server_request_header_count(r);
	out[GS_METHOD] = (uintptr_t)server_request_method(r);
	out[GS_PATH] = (uintptr_t)server_request_path(r);
	out[GS_QUERY] = (uintptr_t)server_request_query(r);
	out[GS_REMOTE] = (uintptr_t)server_request_remote_addr(r);
	out[GS_BODY] = (uintptr_t)body;
	out[GS_BODY_LEN] = (uintptr_t)body_len;
	out[GS_NHEADERS] = (uintptr_t)n;
	out[GS_VERSION] = (uintptr_t)server_request_version(r);
	for (size_t i = 0; i < n && i < cap_headers; i++) {
		const uint8_t *name = NULL, *value = NULL;
		size_t name_len = 0, value_len = 0;
		if (server_request_header_at(r, i, &name, &name_len, &value, &value_len) != SERVER_OK) {
			name = value = NULL;
			name_len = value_len = 0;
		}
		uintptr_t *h = out + GS_INFO_WORDS + 4 * i;
		h[0] = (uintptr_t)name;
		h[1] = (uintptr_t)name_len;
		h[2] = (uintptr_t)value;
		h[3] = (uintptr_t)value_len;
	}
	return n;
}

#define GS_STACK_HEADERS 32

// Builds the header array from blob (names and values back to back) and lens (2 per header).
static server_header *gs_headers(server_header *stack, const uint8_t *blob, const size_t *lens, size_t nh) {
	server_header *h = stack;
	if (nh > GS_STACK_HEADERS) {
		h = malloc(nh * sizeof *h);
		if (h == NULL) return NULL;
	}
	size_t off = 0;
	for (size_t i = 0; i < nh; i++) {
		h[i].name = blob + off; h[i].name_len = lens[2 * i]; off += lens[2 * i];
		h[i].value = blob + off; h[i].value_len = lens[2 * i + 1]; off += lens[2 * i + 1];
	}
	return h;
}

int gs_respond(server_request *req, uint16_t status, const uint8_t *blob, const size_t *lens, size_t nh,
                      const uint8_t *body, size_t body_len) {
	server_header stack[GS_STACK_HEADERS];
	server_header *h = gs_headers(stack, blob, lens, nh);
	if (h == NULL) return SERVER_ERR_RUNTIME;
	int rc = server_respond(req, status, nh ? h : NULL, nh, body, body_len);
	if (h != stack) free(h);
	return rc;
}

int gs_respond_stream(server_request *req, uint16_t status, const uint8_t *blob, const size_t *lens, size_t nh,
                             server_stream **out) {
	server_header stack[GS_STACK_HEADERS];
	server_header *h = gs_headers(stack, blob, lens, nh);
	if (h == NULL) return SERVER_ERR_RUNTIME;
	int rc = server_respond_stream(req, status, nh ? h : NULL, nh, out);
	if (h != stack) free(h);
	return rc;
}
