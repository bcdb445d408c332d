/*
 * host: runs a Lua 5.1 script the way app_lua does (PUC Lua, the stirgate
 * C module found through package.cpath), with three helpers for the fork
 * test: host_fork(), host_wait(pid) -> exit status, host_exit(code).
 *
 * usage: host SCRIPT [ARGS...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int l_fork(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)fork());
	return 1;
}

static int l_wait(lua_State *L)
{
	int st = 0;
	pid_t pid = (pid_t)luaL_checkinteger(L, 1);
	if(waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		lua_pushinteger(L, -1);
	else
		lua_pushinteger(L, WEXITSTATUS(st));
	return 1;
}

static int l_exit(lua_State *L)
{
	_exit((int)luaL_checkinteger(L, 1));
	return 0;
}

int main(int argc, char **argv)
{
	lua_State *L;
	int i;

	if(argc < 2) {
		fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
		return 2;
	}
	L = luaL_newstate();
	luaL_openlibs(L);
	lua_register(L, "host_fork", l_fork);
	lua_register(L, "host_wait", l_wait);
	lua_register(L, "host_exit", l_exit);
	lua_newtable(L);
	for(i = 0; i < argc - 1; i++) {
		lua_pushstring(L, argv[i + 1]);
		lua_rawseti(L, -2, i);
	}
	lua_setglobal(L, "arg");
	if(luaL_dofile(L, argv[1]) != 0) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		return 1;
	}
	lua_close(L);
	return 0;
}
