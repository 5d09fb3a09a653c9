CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int);
INSERT INTO public.items VALUES (1, 'a', 10);
UPDATE public.items SET id = 2, qty = 11 WHERE id = 1;
UPDATE public.items SET qty = 12 WHERE id = 2;
DELETE FROM public.items WHERE id = 2;
