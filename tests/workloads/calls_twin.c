/* The second static helper() of the calls workload (see calls.c). */
__attribute__((noinline)) static long helper(long x)
{
	return x * 3;
}

long twin(long x)
{
	return helper(x);
}
