# stringer names an unlisted value TypeName(n); logs have always shown the
# registry's prefix instead (ENCR(99), KE(99)), so go generate rewrites it.
s/"TransformType("/"TRANSFORM("/
s/"EncrID("/"ENCR("/
s/"PRFID("/"PRF("/
s/"IntegID("/"INTEG("/
s/"ESNID("/"ESN("/
s/"GroupID("/"KE("/
s/"AuthMethod("/"AUTH("/
s/"IDType("/"ID("/
s/"HashAlgorithm("/"HASH("/
