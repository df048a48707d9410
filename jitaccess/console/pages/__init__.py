"""The console's pages, one module a page (or a page and its forms). Each is a class over the shared
`Console` (jitaccess.console.core) whose `install` adds its routes to the console's router."""
