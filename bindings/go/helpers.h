// C helpers for the Go binding: one cgo crossing reads a whole request or answers with headers,
// and header arrays are built on the C stack so no Go pointer is ever stored in C memory.
#ifndef GRACESERVE_GO_HELPERS_H
#define GRACESERVE_GO_HELPERS_H
#include <stddef.h>
#include <stdint.h>
#include "graceserve.h"

typedef struct {
	const char *method;
	const char *path;
	const char *query;
	const char *remote;
	const uint8_t *body;
	size_t body_len;
	size_t nheaders;
	int version;
} gs_req_info;

void gs_set_handler(server_options *o, uintptr_t ud);
size_t gs_read_request(const server_request *r, gs_req_info *info, server_header *hdrs, size_t cap);
int gs_respond(server_request *req, uint16_t status, const uint8_t *blob, const size_t *lens, size_t nh,
               const uint8_t *body, size_t body_len);
int gs_respond_stream(server_request *req, uint16_t status, const uint8_t *blob, const size_t *lens, size_t nh,
                      server_stream **out);
#endif
