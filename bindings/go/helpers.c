// C helpers for the cgo binding; see helpers.h.
#include <stdint.h>
#include <stdlib.h>
#include "graceserve.h"
#include "helpers.h"

#include "_cgo_export.h"

static void gs_handler_tramp(void *ud, server_request *req) { gsHandle((uintptr_t)ud, req); }
static void gs_drop_tramp(void *ud) { gsDrop((uintptr_t)ud); }

void gs_set_handler(server_options *o, uintptr_t ud) {
	o->handler = gs_handler_tramp;
	o->userdata = (void *)ud;
	o->userdata_drop = gs_drop_tramp;
}



// Fills *info and up to cap headers into hdrs; returns the total header count.
size_t gs_read_request(const server_request *r, gs_req_info *info, server_header *hdrs, size_t cap) {
	info->method = server_request_method(r);
	info->path = server_request_path(r);
	info->query = server_request_query(r);
	info->remote = server_request_remote_addr(r);
	info->version = server_request_version(r);
	info->body = NULL;
	info->body_len = 0;
	server_request_body(r, &info->body, &info->body_len);
	size_t n = server_request_header_count(r);
	info->nheaders = n;
	for (size_t i = 0; i < n && i < cap; i++) {
		server_header *h = &hdrs[i];
		if (server_request_header_at(r, i, &h->name, &h->name_len, &h->value, &h->value_len) != SERVER_OK) {
			h->name = NULL; h->name_len = 0; h->value = NULL; h->value_len = 0;
		}
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
